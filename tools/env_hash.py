"""Print the hash that keys the cached virtual environment.

The venv under ~/.cache/merlib/ is rebuilt only when this hash changes: it covers the Python
version, the dependency lists in pyproject.toml, the lock (requirements.lock: exact versions) and
RECIPE, the version of the install steps in tools/setup_env.sh (bump it when those steps change
what ends up in the venv).
"""

import hashlib
import json
import pathlib
import sys
import tomllib

RECIPE = 2

root = pathlib.Path(__file__).resolve().parent.parent
pyproject = tomllib.loads((root / "pyproject.toml").read_text())
lock = root / "requirements.lock"
lines = lock.read_text().splitlines() if lock.is_file() else []
pins = sorted(line for line in lines if line and not line.startswith("#"))
keyed = {
    "lock": pins,
    "python": sys.version.split()[0],
    "dependencies": pyproject["project"]["dependencies"],
    "optional": pyproject["project"]["optional-dependencies"],
    "no_deps": pyproject["tool"]["merlib"]["setup"]["no_deps"],
    "recipe": RECIPE,
}
if len(sys.argv) > 1 and sys.argv[1] == "--list":
    field = sys.argv[2]
    if field == "runtime":
        print("\n".join(pyproject["project"]["dependencies"]))
    elif field == "dev":
        print("\n".join(pyproject["project"]["optional-dependencies"]["dev"]))
    elif field == "no_deps":
        print("\n".join(pyproject["tool"]["merlib"]["setup"]["no_deps"]))
    elif field == "system":
        print("\n".join(pyproject["tool"]["merlib"]["setup"]["system"]))
    sys.exit(0)
print(hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:12])

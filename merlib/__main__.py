from merlib.cli import main

raise SystemExit(main())

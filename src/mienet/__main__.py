from mienet.cli import main

raise SystemExit(main())

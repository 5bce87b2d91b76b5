from rnnpipe.cli import main

raise SystemExit(main())

from polyculture.cli import main

raise SystemExit(main())

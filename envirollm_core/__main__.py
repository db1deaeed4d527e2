from envirollm_core.cli import main

raise SystemExit(main())

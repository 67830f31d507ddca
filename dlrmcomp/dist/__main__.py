from .cli import worker_main

raise SystemExit(worker_main())

from hil.cli import main
raise SystemExit(main())

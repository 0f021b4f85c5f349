"""``python -m bench`` (and ``make bench``): see bench/README.md."""

from bench.run import main

raise SystemExit(main())

"""Run a metaloss recipe: `accelerate launch tools/run.py RECIPE [key=value ...]` (or --list)."""

from metaloss.core.harness.launch import main

raise SystemExit(main())

"""`python -m rt_rl.report`: the same as `rt-rl report`."""

from rt_rl.report import main

raise SystemExit(main())

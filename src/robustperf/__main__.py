from robustperf.cli.app import main

main()

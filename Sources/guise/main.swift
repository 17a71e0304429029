import GuiseCLI

Guise.main()

import GuiseCLI

Guise.runMain()

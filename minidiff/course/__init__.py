"""What the notebooks use: training, recipes for the shipped models, plotting."""

"""The engine behind tools/: load a config, train, evaluate, export, predict (ppdet's Trainer underneath)."""

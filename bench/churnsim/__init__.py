"""Third-party churn datasets from ChurnSim (PyPI `fightchurn`), to judge score quality on
data this project did not write. `generate` makes them; `dataset` reads and replays them."""

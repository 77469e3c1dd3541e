"""Leaving the hosted fine-tuning service: take stock of what an organisation has there (inventory),
capture its fine-tuned models' behaviour (capture), recreate its jobs here (replay), and show in
numbers whether the new model can replace the old one (compare)."""

"""``/v1/batches``: many chat or Responses requests from one file, answered in the background."""

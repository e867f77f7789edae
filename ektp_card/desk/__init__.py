"""Distribution desk: the card registry, its life cycle and the hash-chained audit trail."""

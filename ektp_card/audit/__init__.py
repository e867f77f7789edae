"""Security audit of a card: attack cards and a named catalogue of clone, forgery and skimming tests."""

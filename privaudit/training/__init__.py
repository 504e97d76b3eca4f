"""training stage of privaudit."""

"""data stage of privaudit."""

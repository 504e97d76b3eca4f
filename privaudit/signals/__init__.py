"""signals stage of privaudit."""

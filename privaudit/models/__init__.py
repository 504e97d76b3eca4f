"""models stage of privaudit."""

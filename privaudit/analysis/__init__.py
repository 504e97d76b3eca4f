"""analysis stage of privaudit."""

"""attacks stage of privaudit."""

"""report stage of privaudit."""

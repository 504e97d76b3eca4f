"""evaluation stage of privaudit."""

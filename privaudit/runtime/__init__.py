"""runtime stage of privaudit."""

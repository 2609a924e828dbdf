"""One module per revision; a package so that the wheel ships them."""

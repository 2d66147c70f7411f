"""Dataset conversion to RecBole atomic files."""

"""The station: the clerk's, the desk's and the reviewer's screens in a browser (`ektp station`)."""

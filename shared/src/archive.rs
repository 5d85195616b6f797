//! Safe unpacking of uploaded source archives (.tar.gz, .zip): no path traversal, no links out.

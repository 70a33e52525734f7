"""One thin click module per command; the work lives in the library modules beside this package."""

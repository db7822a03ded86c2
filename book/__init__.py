"""The lab bench: builds, starts, verifies, loads and measures the services.

Every chapter imports this package; cells stay short because the work lives
here. Measuring and plotting are separate: the bench writes results with
their metadata (`results`), and plots only read them (`plots`).
"""

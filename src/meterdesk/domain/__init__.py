"""The pure domain core: money, units, plans and pricing, periods. Standard library only, no I/O beyond reading a plan file."""

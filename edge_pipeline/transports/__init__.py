"""Connected devices: transports (ssh for Linux boards) behind one interface, and the runner script they push."""

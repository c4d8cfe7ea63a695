"""Running the service on one machine: Pub/Sub emulator, functions-framework, a receiver."""

"""Built-in strategies. Each registers through the same hook as any third-party plugin."""

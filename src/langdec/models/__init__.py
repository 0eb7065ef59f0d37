"""The model shared by training and evaluation: loading a base model (hub id, local folder, GGUF file),
what precision a setting becomes on this machine, PEFT methods by name, serving exported adapters."""

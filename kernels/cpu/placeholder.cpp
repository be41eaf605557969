// replaced by the CPU kernel files

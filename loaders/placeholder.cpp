// replaced by the loader sources

"""Planning: training and serving estimates from the hardware catalog, and capacity search on the simulator."""

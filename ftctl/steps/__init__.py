"""Sans-IO steps: generators that yield effects (command batches, journal records, sleeps).

Nothing in this package imports redis, asyncio or threading; the drivers in
``ftctl.drivers`` execute the effects.
"""

"""
The pure Yjs layer: bytes in, bytes and pycrdt docs out, no Django.

- `codec`: lib0 varuints, state vectors and delete sets, every count bounds-checked.
- `updates`: the walk of an update's structure before pycrdt may decode it.
- `door`: the one door client bytes pass (`admit_*`) and the types that say they did.
- `docs`: building and applying pycrdt docs from door types only.
- `awareness`: presence entries and the table that merges them.

Everything above (realtime, storage, history, the tests) uses these, and no copy of them.
"""

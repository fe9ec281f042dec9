"""Cross-cutting pieces every service uses: errors, caller context, interceptors, ids."""

"""The neural-op layer: cell genomes of the NAS-Bench spaces (more to come with the
networks they compile to)."""

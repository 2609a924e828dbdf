"""Media assets: records, versions and licenses in Postgres, files in the object store, uploads checked."""

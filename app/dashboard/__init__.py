"""The sales team's dashboard and the tracker script, served by the service itself."""

"""TRex stateless profiles: loaded by TRex's own client library, rendered to packets."""

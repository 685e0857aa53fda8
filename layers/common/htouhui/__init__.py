"""Htouhui open API for merchants: the wire protocol, typed models, the client, the store."""

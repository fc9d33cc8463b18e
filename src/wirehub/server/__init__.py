"""The server: WebSocket gateway, connections, the hub, the node and the HTTP endpoints."""

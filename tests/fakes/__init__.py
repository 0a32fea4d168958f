"""Protocol test servers for what cannot run here (Exchange): Microsoft Graph and EWS,
each checking every body it exchanges against Microsoft's published schemas."""

"""Write-back: warehouse tables (`writeback.*`) say what SalesLoft should contain; assets make it so."""

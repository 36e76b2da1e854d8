"""Write-back: plan (pure), journal, apply, review queue, and one scene's write phase."""

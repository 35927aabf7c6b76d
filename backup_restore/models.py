from django.db import models
from django.utils.translation import gettext_lazy as _


class Installation(models.Model):
    """The random token of this install, from which each backup's install id is derived.

    `backup --keep` deletes only archives whose manifest has this install's id. There is
    one row, made by the first backup. Restoring an archive brings back the row of the
    install that made it.
    """

    token = models.CharField(_("token"), max_length=32, editable=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("installation")
        verbose_name_plural = _("installations")

    def __str__(self):
        return self.token
